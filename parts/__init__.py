"""Single resources the components are built from, made the same way everywhere: a Helm release at its pinned
chart (helm), an EKS add-on at its pinned version and a controller's service role (addons). Functions, not
components: what they create is a child of the component that calls them (`parent`), and takes its provider
from that component's `providers`, as every child does."""
