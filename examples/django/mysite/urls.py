import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

ITEMS: dict[int, dict[str, object]] = {1: {"name": "hammer", "price": 9.5}}


def read_item(request: HttpRequest, item_id: int) -> JsonResponse:
    if item_id not in ITEMS:
        return JsonResponse({"detail": "no such item"}, status=404)
    return JsonResponse(ITEMS[item_id])


@csrf_exempt
def create_item(request: HttpRequest) -> JsonResponse:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = json.loads(request.body or b"{}")
    return JsonResponse({"id": item_id}, status=201)


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("items/<int:item_id>", read_item),
    path("items", create_item),
    path("health", health),
]
