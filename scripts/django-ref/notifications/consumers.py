"""The seed's NotificationConsumer (step 3.3), without the per-message prints (they would only slow it)."""
import json

from channels.generic.websocket import AsyncWebsocketConsumer


class NotificationConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.close(code=4001)
            return
        self.group_name = f"user_{self.user.id}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send(
            text_data=json.dumps(
                {
                    "type": "connection_established",
                    "message": f"Connected as {self.user.username}",
                    "user_id": self.user.id,
                }
            )
        )

    async def disconnect(self, close_code):
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data):
        try:
            data = json.loads(text_data)
            await self.send(text_data=json.dumps({"type": "echo", "data": data}))
        except json.JSONDecodeError:
            await self.send(text_data=json.dumps({"type": "error", "message": "Invalid JSON"}))

    async def notification(self, event):
        await self.send(text_data=json.dumps({"type": event["notification_type"], "data": event["data"]}))

    async def friend_request(self, event):
        await self.send(text_data=json.dumps({"type": "friend_request", "data": event["data"]}))

    async def friend_accepted(self, event):
        await self.send(text_data=json.dumps({"type": "friend_accepted", "data": event["data"]}))

    async def new_message(self, event):
        await self.send(text_data=json.dumps({"type": "new_message", "data": event["data"]}))
