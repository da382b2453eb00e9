//! Float checkpoint -> int8 `.skq` model (BN folding, calibration, requantisation). Built in the quantize+firmware issue.
