"""What "optimal" means for `optimal_ratio`: an upper bound on the number of jobs any assignment
can place on the same market.

Jobs with identical feasibility rows and GPU count form job classes; nodes with identical
feasibility columns and free-GPU count form node classes. The integer program over classes
(y[jc, nc] = jobs of class jc put on nodes of class nc) with
  Σ_nc y ≤ jobs in jc,   Σ_jc g·y ≤ nodes·free,   Σ_{g_jc ≥ k} y ≤ nodes·⌊free/k⌋ for each size k
is a relaxation of the exact per-node problem (every real assignment maps onto a solution), so
its optimum bounds the true optimum from above and placed / bound is a lower bound on the real
ratio. It is solved exactly with HiGHS (scipy.optimize.milp); if that times out, the LP
relaxation's floor is used (still an upper bound).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from broker.engine.assign import _unique_rows
from broker.engine.types import BoolA, IntA


def placement_upper_bound(*, feas: BoolA, gpu_count: IntA, free: IntA, time_limit_s: float = 60.0) -> tuple[int, str]:
    """Upper bound on jobs placeable. `feas` (J × N) must include 'node has ≥ g free GPUs'."""
    _n_jobs, _ = feas.shape
    ok_jobs = np.flatnonzero(feas.any(axis=1))
    if len(ok_jobs) == 0:
        return 0, "no feasible job"
    live = np.flatnonzero(feas[ok_jobs].any(axis=0))
    f = feas[np.ix_(ok_jobs, live)]
    ncol = np.concatenate([np.packbits(f, axis=0).T, free[live, None].astype(np.uint8)], axis=1)
    _, ncls, ncount = _unique_rows(ncol)
    n_nc = len(ncount)
    rep = np.zeros(n_nc, dtype=np.int64)
    rep[ncls] = np.arange(len(live))
    nfree = free[live][rep]
    fc = f[:, rep]
    jrow = np.concatenate([np.packbits(fc, axis=1), gpu_count[ok_jobs, None].astype(np.uint8)], axis=1)
    _, jcls, jcount = _unique_rows(jrow)
    n_jc = len(jcount)
    jrep = np.zeros(n_jc, dtype=np.int64)
    jrep[jcls] = np.arange(len(ok_jobs))
    jg = gpu_count[ok_jobs][jrep]
    adj = fc[jrep]
    ji, ni = np.nonzero(adj)
    n_var = len(ji)
    var = np.arange(n_var)
    rows: list[np.ndarray] = [ji]
    cols: list[np.ndarray] = [var]
    vals: list[np.ndarray] = [np.ones(n_var)]
    ub: list[np.ndarray] = [jcount.astype(float)]
    base = n_jc
    rows.append(base + ni)
    cols.append(var)
    vals.append(jg[ji].astype(float))
    ub.append((ncount * nfree).astype(float))
    base += n_nc
    for k in sorted({int(x) for x in jg if x > 1}):
        m = jg[ji] >= k
        rows.append(base + ni[m])
        cols.append(var[m])
        vals.append(np.ones(int(m.sum())))
        ub.append((ncount * (nfree // k)).astype(float))
        base += n_nc
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(base, n_var)).tocsr()
    upper = np.concatenate(ub)
    c = -np.ones(n_var)
    res = milp(
        c,
        constraints=LinearConstraint(a, -np.inf, upper),
        integrality=np.ones(n_var),
        bounds=Bounds(0, np.inf),
        options={"time_limit": time_limit_s},
    )
    if res.status == 0 and res.x is not None:
        return round(-res.fun), f"exact ILP over {n_jc}×{n_nc} classes"
    lp = linprog(c, A_ub=a, b_ub=upper, bounds=(0, None), method="highs")
    if lp.status == 0:
        return int(np.floor(-lp.fun + 1e-6)), f"LP bound over {n_jc}×{n_nc} classes"
    return len(ok_jobs), "trivial bound (feasible jobs)"
