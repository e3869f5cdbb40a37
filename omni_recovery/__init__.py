"""omni-recovery: bring an OmniCloud environment back from a set of ISO 9660 backup files."""

__version__ = "0.1.0"
