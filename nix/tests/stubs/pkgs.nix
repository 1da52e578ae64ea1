# The few pkgs attributes the modules use. Derivations are plain records with store-like
# paths; writeText and writeShellScript keep their text so tests can read and run it.
# formats.toml / formats.yaml carry the value types of pkgs/pkgs-lib/formats.nix.
{ lib }:

let
  store = builtins.storeDir;
  stubPackage = name:
    let self = {
      type = "derivation";
      inherit name;
      outPath = "${store}/00000000000000000000000000000000-${name}";
      outputs = [ "out" ];
      out = self;
      meta.mainProgram = name;
    };
    in self;
  stubFile = name: fields: { outPath = "${store}/11111111111111111111111111111111-${name}"; inherit name; } // fields;
  valueType = lib.types.nullOr (lib.types.oneOf [
    lib.types.bool lib.types.int lib.types.float lib.types.str lib.types.path
    (lib.types.attrsOf valueType) (lib.types.listOf valueType)
  ]);
  format = { }: {
    type = lib.types.attrsOf valueType;
    generate = name: value: stubFile name { inherit value; };
  };
in
{
  jellyfin-pusher = stubPackage "jellyfin-pusher";
  jellyfin = stubPackage "jellyfin";
  victoriametrics = stubPackage "victoriametrics";
  formats.toml = format;
  formats.yaml = format;
  writeText = name: text: stubFile name { inherit text; };
  writeShellScript = name: text: stubFile name { text = "#!/bin/sh\n" + text; };
  callPackage = _: _: stubPackage "jellyfin-pusher";
}
