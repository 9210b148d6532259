"""The database's identity: messages carry it so a worker never touches another database's stage."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import StorageError
from storage.models import Meta

DATABASE_ID = "database_id"


def database_id(session: Session) -> str:
    """The uuid hex written when the schema was created (migration 0003)."""
    value = session.scalar(select(Meta.value).where(Meta.key == DATABASE_ID))
    if value is None:
        raise StorageError("the database has no identity: run `gradq db upgrade`")
    return value
