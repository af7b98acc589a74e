"""The seed's notify_user (step 3.4); async variant for the async publish view."""
from channels.layers import get_channel_layer


async def notify_user_async(user_id, notification_type, data):
    await get_channel_layer().group_send(
        f"user_{user_id}", {"type": notification_type.replace("-", "_"), "data": data}
    )
