"""rigshift-agent: the RigShift node agent (hardware detection, benchmark, lease runner). HTTP only, no Django."""

__version__ = "0.1.0"
