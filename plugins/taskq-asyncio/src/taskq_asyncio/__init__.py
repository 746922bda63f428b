"""taskq-asyncio: the asyncio pool, for ``async def`` tasks."""
