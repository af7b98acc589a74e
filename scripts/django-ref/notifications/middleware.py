"""The seed's JWTAuthMiddleware, verbatim in behaviour (shared/seed/notifications-app.md, step 3.2)."""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser, User
from rest_framework_simplejwt.tokens import AccessToken


@database_sync_to_async
def get_user_from_token(token_string):
    try:
        token = AccessToken(token_string)
        user_id = token.payload.get("user_id")
        return User.objects.get(id=user_id)
    except Exception as e:  # noqa: BLE001 - the seed swallows every error
        print(f"WebSocket auth error: {e}")
        return AnonymousUser()


class JWTAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        query_params = parse_qs(scope.get("query_string", b"").decode())
        token_list = query_params.get("token", [])
        token = token_list[0] if token_list else None
        scope["user"] = await get_user_from_token(token) if token else AnonymousUser()
        return await super().__call__(scope, receive, send)
