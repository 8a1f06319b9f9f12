"""Framework integrations, each imported only by a job that uses that framework.

    lightning  OutliveCallback: saves at a batch boundary on the preemption flag (never inside
               the signal handler, Lightning #21406) and on ``due()``; loads outlive files
    hf         OutliveHFCallback: the same for a Hugging Face ``Trainer`` through
               ``control.should_save``; seals each checkpoint-N directory once it is durable

Importing these modules imports no framework: the callback classes are built on first access.
"""
