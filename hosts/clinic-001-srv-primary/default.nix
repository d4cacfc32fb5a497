# Example: a clinic's primary server (practice-management database and web front end).
# Root disk encrypted with LUKS and unlocked at boot by the clinic's two Tang servers; SSH by
# MSP certificate only; the agent uploads evidence to S3 Object Lock. Two approved, dated
# baseline exceptions for client clinic-001: a longer SSH keep-alive and PostgreSQL's port
# opened for the reporting workstation.
{ ... }:
{
  imports = [ ./hardware.nix ];

  networking.hostName = "clinic-001-srv-primary";
  system.stateVersion = "26.05";

  services.msp-agent = {
    enable = true;
    clientId = "clinic-001";
    # On the host, not in the store: created with `msp-agent key generate --out /etc/msp/signing-keys`.
    signingKeyFile = "/etc/msp/signing-keys/evidence-signing.key";
    worm = {
      endpoint = "https://s3.us-east-2.amazonaws.com";
      bucket = "msp-evidence-clinic-001";
      region = "us-east-2";
      credentialsFile = "/etc/msp/worm-credentials";
    };
    alertWebhookUrl = "https://alerts.msp.example/hooks/clinic-001";
    settings.probes.disk.mounts = [
      "/"
      "/var/lib/postgresql"
    ];
  };

  msp.baseline = {
    enable = true;
    # The client's exception file: approved in baseline/exceptions/clinic-001.yaml and rendered
    # by `msp-agent baseline render` (this is also the default for clientId "clinic-001").
    exceptions = import ../../baseline/rendered/exceptions-clinic-001.nix;
  };

  msp.luksTang = {
    enable = true;
    tangServers = [
      "http://tang1.clinic-001.internal"
      "http://tang2.clinic-001.internal"
    ];
    devices.cryptroot.device = "/dev/disk/by-uuid/0f7c1b52-54a8-4a37-9b2c-2f0e2c1c9a11";
    network.kernelModules = [ "igb" ];
  };

  msp.sshCa = {
    enable = true;
    # Example CA (its private half was destroyed): put your MSP user CA's public key here.
    userCaKeys = [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOJsMUOHF9/UDaxLgfLp08RUf86byprnLPq0YOLuhzRn msp-user-ca-2026"
    ];
    principals.mspadmin = [
      "msp-oncall"
      "clinic-001-admin"
    ];
  };
  users.users.mspadmin = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    # For sudo only (SSH refuses passwords); a hash kept on the host, not in the store.
    hashedPasswordFile = "/var/lib/msp/secrets/mspadmin.hash";
  };

  # Covered by exception EXC-clinic-001-001 (until 2027-03-31).
  services.openssh.settings.ClientAliveInterval = 600;

  msp.auditd.enable = true;
  msp.hardening.enable = true;

  # Daily encrypted backups (the baseline's backup.schedule / backup.encrypted); RB-BACKUP-001
  # reacts to failures of restic-backups-*.service, RB-RESTORE-001 tests a restore weekly.
  services.restic.backups.clinic = {
    initialize = true;
    repository = "s3:https://s3.us-east-2.amazonaws.com/msp-backups-clinic-001/srv-primary";
    passwordFile = "/etc/msp/restic-password";
    environmentFile = "/etc/msp/restic-s3.env";
    paths = [
      "/var/lib/postgresql"
      "/var/lib/msp"
    ];
    timerConfig = {
      OnCalendar = "daily";
      Persistent = true;
    };
  };

  services.postgresql.enable = true;
  services.nginx.enable = true;
  # 443 for the web front end; 5432 under exception EXC-clinic-001-002 (until 2027-05-01).
  # sshd adds 22 itself.
  networking.firewall.allowedTCPPorts = [
    443
    5432
  ];
}
