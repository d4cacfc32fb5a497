# The smallest host the checks evaluate: every msp-flake module on, compliant with the
# baseline, no exceptions (client clinic-test has no exceptions file). Shared by the flake's eval checks and VM tests and by
# scripts/eval-modules.
{
  nixpkgs.hostPlatform = "x86_64-linux";
  boot.loader.systemd-boot.enable = true;
  fileSystems."/" = {
    device = "/dev/mapper/cryptroot";
    fsType = "ext4";
  };
  msp.luksTang = {
    enable = true;
    tangServers = [
      "http://tang1.test"
      "http://tang2.test"
    ];
    devices.cryptroot.device = "/dev/vda2";
  };
  networking.firewall.allowedTCPPorts = [ 443 ];
  networking.hostName = "eval-test";
  system.stateVersion = "26.05";

  services.msp-agent = {
    enable = true;
    clientId = "clinic-test";
  };
  msp.baseline.enable = true;
  msp.sshCa = {
    enable = true;
    userCaKeys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOJsMUOHF9/UDaxLgfLp08RUf86byprnLPq0YOLuhzRn ca" ];
    principals.admin = [ "msp-oncall" ];
  };
  users.users.admin.isNormalUser = true;
  msp.auditd.enable = true;
  msp.hardening.enable = true;
  services.restic.backups.test = {
    repository = "/var/lib/backup";
    passwordFile = "/etc/msp/restic-password";
    paths = [ "/var/lib/msp" ];
    timerConfig.OnCalendar = "daily";
  };
}
