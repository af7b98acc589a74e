"""HTTP routes: the publish endpoint the load tester's `http` publisher calls."""
from django.urls import path

from notifications.views import notify

urlpatterns = [path("api/notify", notify)]
