"""Teleport client: proxy discovery, IAM join, impersonated identity, host CAs and Kubernetes clusters."""

from teleport_argocd.teleport.client import TeleportSession, join
from teleport_argocd.teleport.keeper import BotKeeper, JoinSettings
from teleport_argocd.teleport.proxy import ProxyInfo, find_proxy

__all__ = ["BotKeeper", "JoinSettings", "ProxyInfo", "TeleportSession", "find_proxy", "join"]
