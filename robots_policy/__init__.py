"""Every allow/deny decision the crawler makes, and its reason. Pure code: no Scrapy, no I/O."""

from robots_policy.cache import CachedFetch, MemoryPolicyFileCache, PolicyFileCache
from robots_policy.decision import Decision
from robots_policy.network import check_addresses
from robots_policy.robots import RobotsRules, is_allowed_by_robots, is_valid_product_token

__all__ = [
    "CachedFetch",
    "Decision",
    "MemoryPolicyFileCache",
    "PolicyFileCache",
    "RobotsRules",
    "check_addresses",
    "is_allowed_by_robots",
    "is_valid_product_token",
]
