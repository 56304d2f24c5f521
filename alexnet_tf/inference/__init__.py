"""Any trained model behind one interface: loading, predicting, evaluating, features, neighbours."""
