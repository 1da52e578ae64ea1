# A value TOML can hold, as pkgs.formats.toml declares it (pkgs/pkgs-lib/formats.nix), for
# the freeform parts of `settings`.
{ lib }:
let
  inherit (lib) types;
  valueType = types.nullOr (types.oneOf [
    types.bool
    types.int
    types.float
    types.str
    types.path
    (types.attrsOf valueType)
    (types.listOf valueType)
  ]) // { description = "TOML value"; };
in
valueType
