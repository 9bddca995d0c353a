from common.errors import Conflict, PaymentRequired


class InsufficientFunds(PaymentRequired):
    """A guarded account would go negative."""

    def __init__(self, message: str, *, shortfall_micros: int) -> None:
        super().__init__(message, details={"shortfall_micros": shortfall_micros})
        self.shortfall_micros = shortfall_micros


class UnbalancedTransaction(Conflict):
    code = "unbalanced"
