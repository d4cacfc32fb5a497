# Example: a small clinic's only server, fully compliant with the baseline (no exceptions).
# Copy this directory to add a clinic: change the host name, client id, disks and principals.
{ ... }:
{
  nixpkgs.hostPlatform = "x86_64-linux";
  boot.loader.systemd-boot.enable = true;
  fileSystems."/" = {
    device = "/dev/mapper/cryptroot";
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
    options = [ "umask=0077" ];
  };

  networking.hostName = "clinic-002-srv-01";
  system.stateVersion = "26.05";

  services.msp-agent = {
    enable = true;
    clientId = "clinic-002";
  };

  msp.baseline.enable = true;

  # The baseline requires network-bound disk encryption on every server.
  msp.luksTang = {
    enable = true;
    tangServers = [
      "http://tang1.clinic-002.internal"
      "http://tang2.clinic-002.internal"
    ];
    devices.cryptroot.device = "/dev/disk/by-uuid/5b1f0e4e-2f53-4a8e-9d0e-6c3f1a7d2b90";
    network.kernelModules = [ "e1000e" ];
  };

  msp.sshCa = {
    enable = true;
    # Example CA (its private half was destroyed): put your MSP user CA's public key here.
    userCaKeys = [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOJsMUOHF9/UDaxLgfLp08RUf86byprnLPq0YOLuhzRn msp-user-ca-2026"
    ];
    principals.mspadmin = [ "msp-oncall" ];
  };
  users.users.mspadmin = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    hashedPasswordFile = "/var/lib/msp/secrets/mspadmin.hash";
  };

  # The clinic's web front end (HTTPS); sshd opens 22 itself.
  services.nginx.enable = true;
  networking.firewall.allowedTCPPorts = [ 443 ];

  msp.auditd.enable = true;
  msp.hardening.enable = true;

  # Daily encrypted backups (baseline backup.schedule / backup.encrypted).
  services.restic.backups.clinic = {
    initialize = true;
    repository = "s3:https://s3.us-east-1.amazonaws.com/msp-backups-clinic-002/srv-01";
    passwordFile = "/etc/msp/restic-password";
    environmentFile = "/etc/msp/restic-s3.env";
    paths = [ "/var/lib/msp" ];
    timerConfig = {
      OnCalendar = "daily";
      Persistent = true;
    };
  };
}
