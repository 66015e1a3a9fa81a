"""Persistence: SQLModel tables, the database engine, and the repository that maps rows to domain types."""
