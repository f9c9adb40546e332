"""Pure feature transformations (pandas and numpy), no I/O: frames in, frames out.

``demand``: daily demand per store x SKU with stock-out censoring corrected;
``kernel``: the history features on dense [day x pair] arrays;
``build``: the feature table; ``catalog``: every feature, documented in one place.
``jobs.build_features`` runs them inside Spark tasks, one per chunk of dates.
"""
