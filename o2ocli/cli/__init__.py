"""The ``o2ocli`` command line (click).  Thin: parse, call the library, render."""
