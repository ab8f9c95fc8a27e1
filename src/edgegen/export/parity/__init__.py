"""Parity of a bundle's models against the goldens and PyTorch: the parts of ``edgegen verify``
(``edgegen.export.verify`` is the stage): ``metrics`` (numbers), ``config`` (tolerances),
``cases`` (inputs and references), ``checks`` and ``sampler`` (report rows), ``report``."""
