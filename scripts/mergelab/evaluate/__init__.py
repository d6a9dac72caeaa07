"""The evaluation stage: the shared evaluation job (evaluation_job), lm-eval (harness*), Holmes probing
(holmes*, probe), the sanity check before either, and the partial results of an interrupted run."""
