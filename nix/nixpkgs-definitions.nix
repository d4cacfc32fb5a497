# Definitions nixpkgs 26.05 makes ITSELF that meet msp-flake's own, as data (builtins only),
# shared by the stand-in declarations (nix/stubs.nix) and the pure CI check that no
# unique-merge option is defined twice at one priority (checks/lib/unique-defs.nix).
# Priorities: mkDefault = 1000, a plain definition = 100. Each names the file that makes it.
{
  # nixos/modules/config/sysctl.nix: `boot.kernel.sysctl."<key>" = mkDefault <value>`.
  sysctl = {
    "fs.inotify.max_user_instances" = {
      file = "nixos/modules/config/sysctl.nix";
      priority = 1000;
      value = 524288;
    };
    "fs.inotify.max_user_watches" = {
      file = "nixos/modules/config/sysctl.nix";
      priority = 1000;
      value = 524288;
    };
    "kernel.kptr_restrict" = {
      file = "nixos/modules/config/sysctl.nix";
      priority = 1000;
      value = 1;
    };
    "vm.max_map_count" = {
      file = "nixos/modules/config/sysctl.nix";
      priority = 1000;
      value = 1048576;
    };
  };

  # nixos/modules/security/auditd.nix: "Starting the userspace daemon should also enable
  # audit in the kernel", when security.auditd.enable.
  "security.audit.enable" = {
    file = "nixos/modules/security/auditd.nix";
    priority = 1000;
    value = true;
  };
}
