"""edgegen.training: data, the training loops of the generator and of the evaluator, checkpoints,
and the torch helpers the later stages share (device, seeding, batched generation).

``train(TrainConfig) -> TrainResult`` lives in ``train``, ``train_evaluator(EvaluatorConfig) ->
EvaluatorResult`` in ``evaluator``. Importing this package does not import torch.
"""
