"""sdo: real-time resource awareness and THRIVE+ recommended deployments for an SDO."""

# First: it chooses how sdo.domain's compiled modules are imported (see sdo/compiled.py).
from sdo import compiled as compiled
