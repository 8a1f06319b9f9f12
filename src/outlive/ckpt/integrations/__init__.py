"""Framework integrations, each imported only by a job that uses that framework.

    lightning  OutliveCallback: saves at a batch boundary on the preemption flag (never inside
               the signal handler, Lightning #21406) and on ``due()``; loads outlive files
    hf         OutliveHFCallback: the same for a Hugging Face ``Trainer`` through
               ``control.should_save``; seals each checkpoint-N directory once it is durable
    distributed  DistributedCheckpointer for torch.distributed jobs: sharded (DCP) or replicated
               (DDP) saves, preemption agreed across ranks, resume at another world size
    dist_sharded the sharded save / load as plain functions (DCP plus the commit marker)
    dist_commit  the commit-marker protocol (stdlib only): files, order, fsyncs, retention

Importing these modules imports no framework: the callback classes are built on first access,
and the distributed modules import torch inside their functions.
"""
