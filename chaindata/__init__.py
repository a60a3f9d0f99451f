"""Chain specs shipped with o2ocli (JSON files; see o2ocli.chainspec)."""
