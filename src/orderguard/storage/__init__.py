"""The only code that speaks SQL: schema, migrations, repositories and the unit of work."""
