# Example: a small clinic's only server, fully compliant with the baseline (no exceptions).
# Copy this directory to add a clinic: change the host name, client id, disks and principals.
{ ... }:
{
  nixpkgs.hostPlatform = "x86_64-linux";
  boot.loader.systemd-boot.enable = true;
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
    options = [ "umask=0077" ];
  };

  networking.hostName = "clinic-002-srv-01";
  time.timeZone = "America/New_York";
  system.stateVersion = "26.05";

  services.msp-agent = {
    enable = true;
    clientId = "clinic-002";
  };

  msp.baseline.enable = true;

  msp.sshCa = {
    enable = true;
    userCaKeys = [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHn0cVxk0tPZ6nEJ4fH3WVr5x2Y0m0n3rQGh9q1u6c7d msp-user-ca-2026"
    ];
    principals.mspadmin = [ "msp-oncall" ];
  };
  users.users.mspadmin = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
  };

  msp.auditd.enable = true;
  msp.hardening.enable = true;
}
