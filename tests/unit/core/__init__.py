"""Tests of the pure data layer (:mod:`o2ocli.core`)."""
