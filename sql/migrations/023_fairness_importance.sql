-- Fairness and attribution monitoring keep what they store once in indb.monitor_bins, next to
-- the reference histograms: grid favorable (the favorable class, feature 'prediction') and
-- grid importance (per explained feature: reference mean |contribution| in lower, its rank in
-- bin, explained rows in n). Their per-window results are rows of indb.monitor_results.

COMMENT ON TABLE indb.monitor_bins IS 'Reference histograms: psi = quantile bins (lower edge), cell = equal-width fine cells (binned mode), category = category counts, class = the model''s classes; favorable = the class fairness counts as favorable; importance = reference mean |contribution| (lower) and rank (bin) per feature.';
