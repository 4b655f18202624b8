"""dibao payments service: Beneficiaries, monthly payroll runs, bank batches and confirmations."""
