"""Pure PySpark feature transformations: DataFrame in, DataFrame out, no I/O.

``demand``: daily demand per store x SKU with stock-out censoring corrected;
``build``: the feature table; ``catalog``: every feature, documented in one place.
"""
