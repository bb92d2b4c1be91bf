"""Feature store: entities, versioned feature sets, point-in-time training sets, online lookup.

Feature values are rows in database tables; training sets are point-in-time joins the
database runs (ASOF joins on DuckDB, LATERAL index look-ups on PostgreSQL); the latest value
of every feature per entity is kept by an insert trigger, for online lookup and for scoring
deployments that read stored features (``deploy(..., features_from=...)``).
"""

from indb.feature_store.sets import Feature, FeatureSet, FeatureStoreError
from indb.feature_store.training import TrainingSet

__all__ = ["Feature", "FeatureSet", "FeatureStoreError", "TrainingSet"]
