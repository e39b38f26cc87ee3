"""Ending the Ray processes a test started in a subprocess, and only those."""
import signal


def kill_processes_using(temp_dir, *, sig: int = signal.SIGTERM, wait_s: float = 20) -> int:
    """Send ``sig`` to every process whose command line names ``temp_dir`` (a Ray cluster started
    with ``RAY_TMPDIR=temp_dir``: ``ray stop`` would kill every Ray on the machine, the test
    session's own included), then SIGKILL what is left after ``wait_s``. Returns how many there were."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in (p.info["cmdline"] or [])):
                procs.append(p)
                p.send_signal(sig)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=wait_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return len(procs)
