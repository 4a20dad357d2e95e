"""gRPC servicers: thin shells translating protobuf to the domain workflows and back."""
