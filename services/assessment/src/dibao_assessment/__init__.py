"""dibao assessment service: Policy, cases, investigations, income assessment and decisions."""
