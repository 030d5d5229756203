"""The tables that ``bptt bench`` prints: one row per measured pair, ratios bptt / torch marked ``*`` above
1.0, and a warning when other processes loaded the CPUs while rows were timed."""

from __future__ import annotations

from bptt.perf.timing import FOREIGN_WARN


def _ratio_cells(row: dict) -> str:
    mark = "*" if row["ratio"] > 1.0 else " "
    spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
    return f"{row['ratio']:>9.2f}{mark} {spread:>11}"


def _failed(row: dict) -> str:
    return f"  DISAGREES with torch: max rel err {row['max_rel_err']:.1e} > {row['tolerance']:.0e}, not timed"


def print_layer_table(rows: list[dict]) -> None:
    floor = any("floor_ratio" in r for r in rows)
    header = (f"{'pass':<5} {'family':<6} {'dtype':<7} {'config (T,N,I,H)':<18} {'bptt ms':>10} {'torch ms':>10} "
              f"{'bptt/torch':>10} {'(min-max)':>11} {'GFLOP/s':>8} {'% peak':>7} {'torch %':>7} {'other CPU':>9}"
              + (f" {'floor/torch':>11}" if floor else ""))
    print(header)
    print("-" * len(header))
    for r in rows:
        config = f"{r['T']},{r['N']},{r['I']},{r['H']}"
        lead = f"{r['pass']:<5} {r['family']:<6} {r['dtype']:<7} {config:<18}"
        if not r["verified"]:
            print(lead + _failed(r))
            continue
        print(f"{lead} {r['bptt_s'] * 1e3:>10.3f} {r['torch_s'] * 1e3:>10.3f} {_ratio_cells(r)} "
              f"{r['bptt_gflops']:>8.2f} {100 * r['bptt_peak_fraction']:>6.1f}% "
              f"{100 * r['torch_peak_fraction']:>6.1f}% "
              f"{100 * r['foreign_cpu_fraction']:>8.0f}%"
              + (f" {r['floor_ratio']:>11.2f}" if "floor_ratio" in r else ""))


def print_stream_table(rows: list[dict]) -> None:
    header = (f"{'family':<6} {'dtype':<7} {'H = I':>5} {'bptt us/step':>12} {'torch us/step':>13} "
              f"{'bptt/torch':>10} {'(min-max)':>11} {'other CPU':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        lead = f"{r['family']:<6} {r['dtype']:<7} {r['H']:>5}"
        if not r["verified"]:
            print(lead + _failed(r))
            continue
        print(f"{lead} {r['bptt_s'] * 1e6:>12.1f} {r['torch_s'] * 1e6:>13.1f} {_ratio_cells(r)} "
              f"{100 * r['foreign_cpu_fraction']:>8.0f}%")


def print_memory_table(rows: list[dict]) -> None:
    header = f"{'family':<6} {'dtype':<7} {'config (T,N,I,H)':<18} {'cache MB':>10} {'peak MB':>10} {'peak/cache':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        config = f"{r['T']},{r['N']},{r['I']},{r['H']}"
        print(f"{r['family']:<6} {r['dtype']:<7} {config:<18} {r['cache_bytes'] / 1e6:>10.3f} "
              f"{r['peak_bytes'] / 1e6:>10.3f} {r['peak_over_cache']:>10.2f}")


def print_load_warning(rows: list[dict]) -> None:
    loaded = [r for r in rows if r["verified"] and r["foreign_cpu_fraction"] > FOREIGN_WARN]
    if loaded:
        print(f"WARNING: other processes used more than {100 * FOREIGN_WARN:.0f}% of the CPUs while "
              f"{len(loaded)} of {len(rows)} rows were timed ('other CPU'); on a 2-core machine that distorts "
              f"both sides (busy-waiting thread pools). Rerun on a quiet machine.")
