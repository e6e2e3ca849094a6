"""A process's place in a data-parallel group (:class:`Ranks`): the batch share, the
gradient all-reduce and the broadcasts training needs; a group of one does nothing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel group."""

    rank: int = 0
    world: int = 1

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def share(self, n: int) -> int:
        """This rank's part of a global batch of ``n`` (the parts add up to ``n``)."""
        return n // self.world + (1 if self.rank < n % self.world else 0)

    def average_gradients(self, parameters) -> None:
        """Replace every gradient by its mean over the ranks (one flat all-reduce; a
        parameter without a gradient on this rank counts as zero)."""
        if not self.parallel:
            return
        params = list(parameters)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset: offset + n].view_as(p).clone()
            offset += n

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (the step's loss for the log)."""
        if not self.parallel:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist()))

    def from_rank0(self, *values: float) -> list[float]:
        """Rank 0's ``values`` on every rank."""
        if not self.parallel:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.broadcast(t, 0)
        return t.tolist()

    def gather(self, value: float) -> list[float]:
        """``value`` from every rank, in rank order."""
        if not self.parallel:
            return [value]
        parts = [torch.zeros(1, dtype=torch.float64) for _ in range(self.world)]
        dist.all_gather(parts, torch.tensor([value], dtype=torch.float64))
        return [float(p) for p in parts]

    def sync_parameters(self, module: torch.nn.Module) -> None:
        """Start every rank from rank 0's weights and buffers."""
        if self.parallel:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, 0)

    def agree(self, module: torch.nn.Module) -> bool:
        """Whether every rank holds exactly the same parameters."""
        if not self.parallel:
            return True
        flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
        lo, hi = flat.clone(), flat.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return bool(torch.equal(lo, hi))


def peak_rss_gb() -> float:
    """This process's own peak resident memory. ``VmHWM`` is per address space; the
    ``ru_maxrss`` of a spawned rank would still count its parent's peak from before exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
