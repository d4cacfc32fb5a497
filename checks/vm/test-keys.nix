# Throwaway SSH keys and certificates for the VM tests, made at build time. They are test
# fixtures only: private keys in the Nix store are acceptable here and nowhere else.
{ pkgs }:
pkgs.runCommand "msp-ssh-test-keys" { nativeBuildInputs = [ pkgs.openssh ]; } ''
  mkdir -p $out && cd $out
  ssh-keygen -q -t ed25519 -N "" -C msp-user-ca -f ca
  ssh-keygen -q -t ed25519 -N "" -C some-other-ca -f other-ca
  for k in alice mallory stranger; do ssh-keygen -q -t ed25519 -N "" -C $k -f $k; done
  # alice: signed by the MSP CA for principal msp-oncall (allowed on the server).
  ssh-keygen -q -s ca -I alice@msp -n msp-oncall -V always:forever alice.pub
  # mallory: signed by the MSP CA, but for a principal the server does not allow.
  ssh-keygen -q -s ca -I mallory@msp -n clinic-999-admin -V always:forever mallory.pub
  # stranger: the allowed principal, but signed by a CA the server does not trust.
  ssh-keygen -q -s other-ca -I stranger -n msp-oncall -V always:forever stranger.pub
''
