# PROVISIONAL: replaced by an import of baseline/rendered/ once feat/baseline lands.
{
  id = "hipaa-v1";
  settings = {
    SSH-001 = {
      title = "SSH password authentication disabled";
      hipaa_controls = [ "§164.312(d)" ];
      option = [ "services" "openssh" "settings" "PasswordAuthentication" ];
      value = false;
    };
    AUDIT-001 = {
      title = "auditd enabled";
      hipaa_controls = [ "§164.312(b)" ];
      option = [ "security" "auditd" "enable" ];
      value = true;
    };
  };
}
