"""Broker queue names: a run's queue, per database, so a worker only receives its database's work.

Several databases may share one broker; each (queue, database) pair is its own broker queue, so a
message for another database never reaches a worker that could not run it.
"""

from worker.errors import WorkerInputError

SEPARATOR = "@"
ID_CHARS = 12  # of the database's uuid hex: 48 bits, no collision among a broker's databases


def broker_queue(queue: str, database_id: str) -> str:
    """`gradq` on database 3f2a9c... -> `gradq@3f2a9c1b0d4e`."""
    return f"{queue}{SEPARATOR}{database_id[:ID_CHARS]}"


def split_broker_queue(name: str) -> tuple[str, str | None]:
    """(queue, database id prefix) of a broker queue name; (name, None) for a plain name."""
    queue, sep, short = name.rpartition(SEPARATOR)
    return (queue, short) if sep and queue else (name, None)


def plain_queues(text: str) -> list[str]:
    """The run queues a worker serves, from `-Q a,b` or GRADQ_QUEUE ("a,b"), in order."""
    names = [name.strip() for name in text.split(",")]
    names = list(dict.fromkeys(name for name in names if name))
    bad = [name for name in names if SEPARATOR in name]
    if not names or bad:
        raise WorkerInputError(
            f"queue names {text!r}: give plain names separated by commas, without "
            f"{SEPARATOR!r} (gradq adds the database itself, e.g. gradq@3f2a9c1b0d4e)"
        )
    return names
