"""Names the command line offers before anything heavy is imported: the plot kinds and
the key figures a sweep compares. The plots (:mod:`simulation.analysis.plots`,
matplotlib), the report and the sweep analysis (scipy) import them from here, so each
name has one home and ``distsim --help`` stays fast: keep this module free of imports."""

RUN_KINDS = ("funnel", "economics", "cohorts", "attribution", "saturation", "dashboard")
SWEEP_KINDS = ("variants", "heatmap")
KINDS = RUN_KINDS + SWEEP_KINDS
DESCRIPTIONS = {
    "funnel": "journey stage occupancy over time",
    "economics": "CAC versus LTV per acquisition channel, contribution and payback",
    "cohorts": "cohort retention curves by acquisition channel",
    "attribution": "conversions and revenue credited to each channel under each model",
    "saturation": "spend versus new customers: saturation, marginal and average CAC",
    "dashboard": "weekly channel review: spend, customers, CAC, ROAS, actives, margin",
    "variants": "sweep: variants compared, means with 95% confidence intervals (and the "
                "assumptions' range, with [[uncertain]] draws)",
    "heatmap": "sweep: a figure over two swept parameters, or a sampled block's points "
               "(with draws: each cell's range over the assumptions)",
}

KPIS = {
    "profit": ("profit (gross margin - programme costs - spend)", "currency"),
    "revenue": ("revenue", "currency"),
    "customers": ("new customers", "customers"),
    "cac": ("CAC ((media + fixed cost) / new customers)", "currency per customer"),
    "ltv": ("LTV (margin realised in the run per new customer)", "currency per customer"),
    "ltv_cac": ("LTV/CAC (projected LTV / loaded CAC)", "ratio"),
    "roas": ("ROAS (revenue / spend)", "ratio"),
    "active_at_end": ("active customers at the end", "customers"),
}
