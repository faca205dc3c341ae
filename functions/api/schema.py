"""The GraphQL schema of the contract, with the resolvers bound to its fields.

The types and fields are the contract's, exactly: more may be added, the named
ones are never renamed, retyped or dropped.
"""

from __future__ import annotations

from graphql import GraphQLObjectType, GraphQLSchema, build_schema

from functions.api.resolvers import ROOT

SDL = """
scalar JSON

enum RegistrationState { RECEIVED REGISTERING SUCCESS FAILED }

input PluginRegistrationRequest {
  "Defaults to a name derived from imageUrl."
  pluginName: String
  imageUrl: String!
  callbackApi: String
}

type PluginRegistration { refId: ID! }

type Registration {
  refId: ID!
  pluginName: String!
  imageUrl: String!
  callbackApi: String
  state: RegistrationState!
  error: String
  schema: JSON
  updatedAt: String!
}

type Plugin {
  name: String!
  imageUrl: String!
  refId: ID!
  state: RegistrationState!
  schema: JSON
}

type Query {
  plugin(name: String!): Plugin
  plugins: [Plugin!]!
  registration(refId: ID!): Registration
}

type Mutation {
  registerPlugin(input: PluginRegistrationRequest!): PluginRegistration!
}
"""


def build() -> GraphQLSchema:
    """The schema, each root field resolved by its function in :mod:`resolvers`."""
    schema = build_schema(SDL)
    for type_name, fields in ROOT.items():
        root = schema.get_type(type_name)
        assert isinstance(root, GraphQLObjectType), type_name
        for field_name, resolve in fields.items():
            root.fields[field_name].resolve = resolve
    return schema


SCHEMA = build()
