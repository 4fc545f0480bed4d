"""Adaptive querying: steer the query budget to the classes natural images rarely reach (beyond the paper).

    selection    quotas, per-class allocation, the picks (NumPy)
    pool_index   the pool's ids, thumbnails and bytes, memory-mapped
    interim      the cheap interim copycat that scores the pool
    rounds       the loop: seed set, then rounds of train → score → choose → query
"""
