"""The merge stage's jobs: one recipe's merge with mergekit (merge) and what a merge folder records
about itself (storage). The method catalogue the plan checks recipes against is mergelab.plan.methods."""
