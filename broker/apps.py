from django.apps import AppConfig


class BrokerConfig(AppConfig):
    name = "broker"
    verbose_name = "Broker: jobs, leases, matching, agent API"

    def ready(self) -> None:
        from broker.metrics import broker_metrics
        from broker.selectors.matching_health import matching_health_check
        from broker.services.failover import on_node_went_offline
        from common.health import register_health_check
        from common.metrics import register_collector
        from marketplace.signals import node_went_offline

        node_went_offline.connect(on_node_went_offline, dispatch_uid="broker.failover")
        register_collector(name="broker", collect=broker_metrics)
        register_health_check(name="matching", check=matching_health_check)
