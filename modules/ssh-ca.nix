# msp.sshCa: SSH logins only with certificates signed by the MSP's user CA, for principals the
# host allows per account; no passwords, no keyboard-interactive, no root login. Access is
# then granted and revoked centrally (short-lived certificates) and every login is logged with
# the certificate's key id (HIPAA §164.312(a)(1), §164.312(d), §164.312(b)).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.msp.sshCa;
  keysText = lib.concatLines cfg.userCaKeys;
  # With key files, the CA file is built from them (read at build time, not at evaluation:
  # no import from derivation, so a key file may itself be a build output).
  caSource = pkgs.runCommand "msp_user_ca.pub" { inherit keysText; passAsFile = [ "keysText" ]; } ''
    cat "$keysTextPath" ${lib.concatMapStringsSep " " (f: lib.escapeShellArg "${f}") cfg.userCaKeyFiles} > "$out"
  '';
  caFile = "/etc/ssh/msp_user_ca.pub"; # the baseline's ssh.trusted_user_ca_keys
in
{
  options.msp.sshCa = {
    enable = lib.mkEnableOption "certificate-only SSH logins signed by the MSP user CA";

    userCaKeys = lib.mkOption {
      type = lib.types.listOf (lib.types.strMatching "(ssh-ed25519|ecdsa-sha2-nistp[0-9]+|sk-ssh-ed25519@openssh.com|ssh-rsa) [A-Za-z0-9+/=]+( .*)?");
      example = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMu0... msp-user-ca" ];
      default = [ ];
      description = "Public keys of the user CA(s) whose certificates sshd accepts (TrustedUserCAKeys). This or userCaKeyFiles must name at least one.";
    };

    userCaKeyFiles = lib.mkOption {
      type = lib.types.listOf lib.types.path;
      default = [ ];
      example = lib.literalExpression "[ ./msp-user-ca.pub ]";
      description = ''
        Files with user CA public keys (one per line), added to userCaKeys. Read when the
        system is built, never during evaluation, so a file made by a derivation works
        without import from derivation (the VM test's throwaway CA does this).
      '';
    };

    principals = lib.mkOption {
      type = lib.types.attrsOf (lib.types.listOf (lib.types.strMatching "[A-Za-z0-9@._+-]+"));
      default = { };
      example = {
        admin = [
          "msp-oncall"
          "clinic-001-admin"
        ];
      };
      description = ''
        Account name to the certificate principals allowed to log in as it. A certificate is
        accepted for an account only when one of its principals is listed here
        (AuthorizedPrincipalsFile); accounts not listed accept no certificate at all.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.userCaKeys != [ ] || cfg.userCaKeyFiles != [ ];
        message = "msp.sshCa: no user CA key (userCaKeys and userCaKeyFiles are both empty): no certificate could log in.";
      }
      {
        assertion = cfg.principals != { };
        message = "msp.sshCa.principals is empty: nobody could log in with a certificate.";
      }
    ];

    environment.etc."ssh/msp_user_ca.pub" =
      (if cfg.userCaKeyFiles == [ ] then { text = keysText; } else { source = caSource; })
      // {
        mode = "0444";
      };

    services.openssh = {
      enable = true;
      # Certificates replace per-user key lists: only keys NixOS itself manages are read.
      authorizedKeysInHomedir = lib.mkDefault false;
      settings = {
        # The baseline sets and asserts these too; mkDefault so that a host's contrary value
        # reaches the baseline's assertion (with its rule and exception process) instead of a
        # "conflicting definitions" error.
        TrustedUserCAKeys = lib.mkDefault caFile;
        AuthorizedPrincipalsFile = lib.mkDefault "/etc/ssh/authorized_principals.d/%u";
        PasswordAuthentication = lib.mkDefault false;
        KbdInteractiveAuthentication = lib.mkDefault false;
        PermitRootLogin = lib.mkDefault "no";
        # VERBOSE logs the certificate's key id and serial for every login.
        LogLevel = lib.mkDefault "VERBOSE";
        AuthenticationMethods = lib.mkDefault "publickey";
      };
    };

    # NixOS's lock-out check (with users.mutableUsers = false, as the baseline requires) counts
    # passwords and authorized keys, not certificate principals.
    users.allowNoPasswordLogin = lib.mkDefault true;

    users.users = lib.mapAttrs (_: ps: { openssh.authorizedPrincipals = ps; }) cfg.principals;
  };
}
