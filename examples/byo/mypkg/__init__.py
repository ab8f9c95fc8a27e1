"""A stand-in for your own package: a class-conditional generator edgegen knows nothing about."""
