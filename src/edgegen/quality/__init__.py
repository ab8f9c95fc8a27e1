"""edgegen.quality: does the deployed model draw what it is asked for?

``evaluate(EvalConfig) -> QualityReport`` (in ``evaluate``) measures label fidelity, FID,
diversity and the guard of every variant; ``metrics`` holds the statistics, ``results`` the
config and report types, ``eval_report`` the report folder's writer.
"""
