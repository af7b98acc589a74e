"""POST /api/notify with courier's contract (X-API-Key; one object or an array), calling notify_user.

It exists so the same load-test publisher drives both servers.
"""
import hmac
import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .utils import notify_user_async


@csrf_exempt
async def notify(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    key = request.headers.get("X-API-Key", "")
    if not hmac.compare_digest(key, settings.PUBLISH_API_KEY):
        return JsonResponse({"error": "missing or invalid X-API-Key"}, status=401)
    try:
        body = json.loads(request.body)
    except json.JSONDecodeError:
        return JsonResponse({"error": "invalid JSON"}, status=400)
    items = body if isinstance(body, list) else [body]
    for item in items:
        await notify_user_async(item["user_id"], item["type"], item.get("data"))
    return JsonResponse({"accepted": len(items)}, status=202)
