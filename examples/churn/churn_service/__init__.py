"""churn: a customer-churn classifier service (scikit-learn model, stdlib HTTP) whose predict returns probabilities."""
