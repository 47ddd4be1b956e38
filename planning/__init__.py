"""What the program decides before it creates anything, as pure functions and data (no Pulumi resources):
the typed stack config (config; each key declared once with keys, the nim_models list in models), the NIM model
catalog (catalog), GPU fitting (gpus), instance data (instances), the cost estimate (cost), every pin (versions),
the IAM policy documents (iam), where pods may run (scheduling) and the workload facts several parts share
(workloads). Plain unit tests cover them; `components/` builds resources from what they decide."""
